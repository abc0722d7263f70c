-- GS1 company prefixes claimed by registered actors (ledger/prefix_claims.py): a prefix is
-- reserved here before the ActorRegistered event naming it is stored, and refused while it
-- overlaps (is a prefix of, or starts with) another actor's, so two producers can never both
-- be entitled to issue one GTIN.
CREATE TABLE IF NOT EXISTS public.gtin_prefix_claims (
    prefix text PRIMARY KEY,
    actor text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS gtin_prefix_claims_actor_idx ON public.gtin_prefix_claims (actor);
