-- Notification channels behind circuit breakers (slack, telegram, resend): while a channel's breaker is open, its
-- delivery is neither sent nor failed — it waits, visibly, and goes out after the breaker closes (or is recorded
-- failed with the reason once it has waited too long: lib/notifications/deliver.ts). This records such a wait:
--   the channel's row becomes 'retrying' with the reason (a claim held by the caller is released; a row already sent,
--   or being sent under a live lease, is left alone: returns false), and
--   the notification is kept from the sweeper until after the wait (next_attempt_at), so the waiting round is not
--   joined every 15 minutes by re-announced ones. If that round dies, the sweeper picks the notification up after.
create function public.wait_notification_delivery(
  p_notification_id uuid,
  p_channel text,
  p_reason text,
  p_until timestamptz,
  p_claim_token uuid default null,
  p_now timestamptz default now()
) returns boolean
language plpgsql set search_path = '' as $$
declare
  v_now    timestamptz := coalesce(p_now, now());
  v_reason text := left(coalesce(p_reason, 'waiting for the channel'), 2000);
  v_done   boolean;
begin
  if p_notification_id is null or p_channel is null or p_until is null then
    raise exception 'wait_notification_delivery: notification, channel and until are required' using errcode = '22023';
  end if;
  if p_claim_token is not null then
    update public.notification_deliveries d
       set status = 'retrying', lease_expires_at = null, failed_at = null, last_error = v_reason
     where d.notification_id = p_notification_id and d.channel = p_channel and d.status = 'sending'
       and d.claim_token = p_claim_token;
    v_done := found;
  else
    insert into public.notification_deliveries as d (notification_id, channel, status, attempts, last_error)
    values (p_notification_id, p_channel, 'retrying', 0, v_reason)
    on conflict (notification_id, channel) do update
       set status = 'retrying', lease_expires_at = null, failed_at = null, last_error = v_reason
     where d.status in ('retrying', 'failed') or (d.status = 'sending' and d.lease_expires_at <= v_now);
    v_done := found;
  end if;
  if v_done then
    update public.notifications n
       set next_attempt_at = greatest(coalesce(n.next_attempt_at, p_until), p_until + interval '15 minutes')
     where n.id = p_notification_id and n.delivered_at is null;
  end if;
  return v_done;
end $$;

revoke execute on function public.wait_notification_delivery(uuid, text, text, timestamptz, uuid, timestamptz)
  from public, anon, authenticated;
grant execute on function public.wait_notification_delivery(uuid, text, text, timestamptz, uuid, timestamptz)
  to service_role;
