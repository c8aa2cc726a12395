-- The job pipeline's source of truth. RabbitMQ only carries job ids; every decision is made
-- from these rows.

create table jobs (
    id            uuid primary key,
    service       text not null,
    action        text not null check (action in ('check', 'add', 'fix')),
    trigger       text not null check (trigger in ('cli', 'webhook', 'git', 'cron')),
    trigger_ref   text,
    status        text not null check (status in ('queued', 'running', 'retrying', 'succeeded', 'failed', 'dead')),
    attempts      integer not null default 0,
    max_attempts  integer not null check (max_attempts > 0),
    last_error    text,
    outcome       jsonb,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    -- A retrying job is not due before this.
    not_before    timestamptz,
    -- When this passes on a non-terminal job, its message may be gone: the relay republishes.
    lease_until   timestamptz,
    published_at  timestamptz,
    finished_at   timestamptz
);

-- Coalescing: at most one *waiting* job per service and action. A job that is running or
-- sleeping in a retry delay does not swallow a new request.
create unique index jobs_one_queued_per_service_action on jobs (service, action) where status = 'queued';
create index jobs_relay on jobs (lease_until) where status in ('queued', 'running', 'retrying');
create index jobs_service_created on jobs (service, created_at desc);

create table attempts (
    job_id       uuid not null references jobs (id) on delete cascade,
    attempt      integer not null,
    worker       text not null,
    started_at   timestamptz not null default now(),
    finished_at  timestamptz,
    -- in_sync | drifted | updated | unchanged | failed | retry, or running while in flight
    outcome      text not null default 'running',
    detail       jsonb,
    duration_ms  integer,
    primary key (job_id, attempt)
);

-- What `status` reads without scanning history.
create table service_state (
    service         text primary key,
    last_status     text not null,
    last_summary    text,
    last_job        uuid references jobs (id) on delete set null,
    last_check_at   timestamptz,
    last_change_at  timestamptz,
    authentik_ids   jsonb not null default '{}'::jsonb,
    updated_at      timestamptz not null default now()
);
