//! Broker plumbing shared by gateway and worker:
//! - [`names`]: queue and exchange names under a prefix;
//! - [`topology`]: connections, declarations and consumers;
//! - [`publish`]: confirmed publishing, routed or returned;
//! - [`probe`]: liveness of other processes' queues, reconnect backoff.

mod names;
mod probe;
mod publish;
mod topology;

pub use names::Names;
pub use probe::{LIVENESS_EVERY, backoff, queues_without_consumers};
pub use publish::{Published, json_properties, publish, publish_to_exchange, publish_unconfirmed};
pub use topology::{
    confirm_channel, connect, consume_jobs, consume_queue, declare_jobs, declare_owned,
    declare_shared, jobs_channel, subscribe,
};
