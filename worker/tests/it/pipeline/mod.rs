//! The pipeline on real PostgreSQL and RabbitMQ: each test gets its own database and its own
//! uuid-suffixed queues (with `x-expires`, so a killed run leaves nothing behind).

mod client_outage;
mod concurrency_procs;
mod crash;
mod faults;
pub(crate) mod harness;
mod jobs;
mod outages;
mod restart;
mod startup;
