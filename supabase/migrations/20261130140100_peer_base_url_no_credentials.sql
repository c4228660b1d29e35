-- A peer's base URL carries no credentials (user:password@host): GET /api/peers and the console's Webhooks page show
-- base_url to every API key and the operator, and the delivery (lib/net/guarded-fetch.ts) refuses such URLs anyway,
-- so a hop to that peer could never go out. The peer's shared secret is the credential, held in its variable.
-- `not valid`: rows that exist are left alone (their hops already fail, naming the reason); new and changed rows
-- are checked.
alter table public.peers
  add constraint peers_base_url_no_credentials check (base_url !~ '^https?://[^/?#]*@') not valid;
