//! A whole answer, for the routes that answer with one object instead of a stream: every
//! event of the job gathered until it finished.

use super::error::ApiError;
use super::state::AppState;
use super::submit::Admitted;
use crate::openai::{ToolCall, Usage};
use crate::queue::{JobEvent, JobTicket};

/// Everything a job produced.
#[derive(Debug, Default)]
pub struct Answer {
    /// The text, joined.
    pub content: String,
    /// The reasoning, joined.
    pub reasoning: String,
    /// Tool calls in order.
    pub tool_calls: Vec<ToolCall>,
    /// The vectors of an embedding job.
    pub embeddings: Vec<Vec<f32>>,
    /// OpenAI finish reason.
    pub finish_reason: String,
    /// Token counts.
    pub usage: Usage,
}

/// Waits for the whole answer. The key's place is held until then; shutdown ends the wait.
/// If the client disconnects, hyper drops this future and with it the ticket, which cancels
/// the job.
pub async fn wait(state: &AppState, admitted: Admitted) -> Result<Answer, ApiError> {
    let Admitted {
        ticket, in_flight, ..
    } = admitted;
    let answer = tokio::select! {
        answer = collect(ticket) => answer,
        () = state.hard_stop.cancelled() => Err(ApiError::Unavailable(
            "the server is shutting down; retry shortly".to_owned(),
        )),
    };
    drop(in_flight);
    answer
}

async fn collect(mut ticket: JobTicket) -> Result<Answer, ApiError> {
    let mut answer = Answer::default();
    loop {
        match ticket.next_event().await {
            Some(JobEvent::Started { .. }) => {}
            Some(JobEvent::Delta(delta)) => {
                answer
                    .content
                    .push_str(delta.content.as_deref().unwrap_or_default());
                answer
                    .reasoning
                    .push_str(delta.reasoning.as_deref().unwrap_or_default());
                answer.tool_calls.extend(delta.tool_calls);
            }
            Some(JobEvent::Embeddings { vectors }) => answer.embeddings.extend(vectors),
            Some(JobEvent::Finished {
                finish_reason,
                usage,
            }) => {
                (answer.finish_reason, answer.usage) = (finish_reason, usage);
                return Ok(answer);
            }
            Some(JobEvent::Failed(failure)) => return Err(failure.into()),
            None => {
                return Err(ApiError::Unavailable(
                    "the worker running this request stopped; retry".to_owned(),
                ));
            }
        }
    }
}
