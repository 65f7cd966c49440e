//! Broker plumbing shared by gateway and worker:
//! - [`names`]: queue and exchange names under a prefix;
//! - [`topology`]: connections, declarations and consumers;
//! - [`publish`]: confirmed publishing, routed or returned;
//! - [`pull`]: taking one job at a time and counting a queue's jobs;
//! - [`probe`]: liveness of other processes' queues, reconnect backoff.

mod names;
mod probe;
mod publish;
mod pull;
mod topology;

pub use names::Names;
pub use probe::{LIVENESS_EVERY, NOT_FOUND, Prober, backoff, reply_code};
pub use publish::{
    CONFIRM_TIMEOUT, PublishError, Published, json_properties, publish, publish_patiently,
    publish_to_exchange, publish_unconfirmed, ring,
};
pub use pull::{pull, ready};
pub use topology::{
    confirm_channel, connect, consume_owned, declare_jobs, declare_shared, subscribe,
};
