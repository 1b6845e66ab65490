-- pg_tenancy: the job queue (docs/jobs.md). One table; rows are written only by enqueue(),
-- claim_job(), complete_job() and fail_job() (SECURITY DEFINER, src/jobs.rs), so that the
-- tenant, actor and roles a job carries are always the ones of the verified context that
-- enqueued it: nobody is granted INSERT, UPDATE or DELETE.
--
-- After the registry tables (a claim reads tenancy.tenants) and after current_tenant() and
-- current_job(), which the read policy calls.

CREATE TABLE tenancy.jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME tenancy.jobs_id_seq) PRIMARY KEY,
    tenant       text NOT NULL,
    queue        text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    actor        text,
    roles        text[] NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    run_at       timestamptz NOT NULL DEFAULT now(),
    dedup_key    text,
    enqueued_by  text NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    last_error   text,
    -- A queue is no place for documents: a bounded row keeps a claim cheap.
    CONSTRAINT jobs_payload_size CHECK (pg_catalog.pg_column_size(payload) <= 1048576)
);

-- What a claim scans: the waiting jobs of one queue in the order they are handed out. Done
-- and dead jobs are not in it, however many there are.
CREATE INDEX jobs_ready ON tenancy.jobs (queue, run_at, id) WHERE status = 'queued';
-- A waiting job per (tenant, queue, dedup_key): enqueue() returns it instead of a second.
CREATE UNIQUE INDEX jobs_dedup ON tenancy.jobs (tenant, queue, dedup_key)
    WHERE status = 'queued' AND dedup_key IS NOT NULL;
-- A tenant reading its own jobs.
CREATE INDEX jobs_tenant ON tenancy.jobs (tenant, id);

-- A tenant reads its own jobs; inside a claimed job's transaction, only that job (a worker
-- reads no other job's payload, not even of the same tenant). A support context reads none:
-- tenancy.jobs is not a protected table, so its reads would not be on the support record.
ALTER TABLE tenancy.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY jobs_read ON tenancy.jobs FOR SELECT
    USING (tenant OPERATOR(pg_catalog.=) (SELECT tenancy.current_tenant())
           AND id OPERATOR(pg_catalog.=) COALESCE((SELECT tenancy.current_job()), id)
           AND (SELECT tenancy.context() OPERATOR(pg_catalog.->>) 'source') OPERATOR(pg_catalog.<>) 'support');

-- Jobs are data: a restored database keeps its queue.
SELECT pg_catalog.pg_extension_config_dump('tenancy.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.jobs_id_seq', '');
