//! The Responses API (`POST /v1/responses`, what Codex CLI speaks) over Ollama's `/api/chat`:
//! [`request`] turns `instructions` and `input` items into native messages, and [`events`]
//! turns the job's deltas into Responses objects and their SSE events, in OpenAI's order.
//!
//! Seadragon keeps no conversation state: `previous_response_id` is refused, and clients
//! send the whole conversation in `input`, as Codex does with `store: false`.

pub mod events;
pub mod request;

pub use events::ResponseBuilder;
pub use request::ResponsesRequest;
