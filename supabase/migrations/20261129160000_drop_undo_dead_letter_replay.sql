-- Replays record their start event in the outbox in the same transaction (replay_dead_letter_announced), so a
-- replay whose event could not be sent no longer exists and its undo function is dead code.
drop function if exists public.undo_dead_letter_replay(uuid, uuid);
