//! `/api/chat`: the request recorded and validated, a wait for one of Ollama's scheduler slots,
//! and the streamed or aggregated answer whose body owns the generation (and so the slot).

use std::io;
use std::mem;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::generation::{Event, Generation};
use crate::objects::{ChatObject, Message};
use crate::script::{BUSY, prepare};
use crate::state::Shared;
use crate::wire::{
    NDJSON, Refusal, abort_response, decode, json_body, ndjson, parse_body, respond,
};

pub(crate) async fn chat(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let arrived = Instant::now();
    let parsed = parse_body(&body);
    // Recorded before validation so tests can inspect exactly what the gateway sent.
    if shared.config.record {
        let seen = match &parsed {
            Ok(value) => value.clone(),
            Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
        };
        shared.note(|log| &mut log.chat_requests, seen);
    }
    let job = prepare(&shared, decode(&parsed?)?)?;
    let slot = match acquire_slot(&shared).await {
        Ok(slot) => slot,
        Err(response) => return Ok(response),
    };
    if let Some(reason) = job.load_only {
        let reply = ChatObject::new(&job.model, Message::new("", "", Vec::new()));
        let reply = ChatObject {
            done: true,
            done_reason: Some(reason),
            ..reply
        };
        return Ok(json_body(StatusCode::OK, &reply));
    }
    let stream = job.stream;
    let generation = Generation::start(shared, job, slot, arrived);
    Ok(if stream {
        stream_response(generation).await
    } else {
        aggregate(generation).await
    })
}

/// Waits for a scheduler slot like `server/sched.go`: unbounded in time, bounded in number.
pub(crate) async fn acquire_slot(shared: &Shared) -> Result<OwnedSemaphorePermit, Response> {
    if let Ok(slot) = Arc::clone(&shared.slots).try_acquire_owned() {
        return Ok(slot);
    }
    let admitted = shared.record(|log| {
        let admitted = log.queued < shared.config.max_queue;
        log.queued += usize::from(admitted);
        admitted
    });
    if !admitted {
        return Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, BUSY.to_owned()).into_response());
    }
    // Leaves the queue on every path, including a client that hangs up while waiting.
    let _ticket = QueueTicket(shared);
    tokio::select! {
        slot = Arc::clone(&shared.slots).acquire_owned() => slot.map_err(|_| abort_response()),
        () = shared.shutdown.cancelled() => Err(abort_response()),
    }
}

struct QueueTicket<'a>(&'a Shared);

impl Drop for QueueTicket<'_> {
    fn drop(&mut self) {
        self.0.record(|log| log.queued -= 1);
    }
}

pub(crate) async fn stream_response(mut generation: Generation) -> Response {
    // gin writes the status line and headers together with the first object, not before.
    let first = generation.next().await;
    let rest = stream::unfold(generation, |mut generation| async move {
        generation.next().await.map(|event| (event, generation))
    });
    let body = stream::iter(first).chain(rest).map(|event| match event {
        Event::Object(object) => Ok(ndjson(&object)),
        Event::Error(message) => Ok(ndjson(&json!({"error": message}))),
        // A body error makes hyper drop the connection without the final empty chunk.
        Event::Abort => Err(io::Error::other("fake Ollama cut the connection")),
    });
    respond(StatusCode::OK, NDJSON, Body::from_stream(body))
}

/// `stream:false`: the final object, carrying everything the stream would have sent.
pub(crate) async fn aggregate(mut generation: Generation) -> Response {
    let mut whole = Message::new("", "", Vec::new());
    while let Some(event) = generation.next().await {
        match event {
            Event::Object(mut object) => {
                let part = mem::take(&mut object.message);
                whole.content.push_str(&part.content);
                whole.thinking.push_str(&part.thinking);
                whole.tool_calls.extend(part.tool_calls);
                if object.done {
                    object.message = whole;
                    return json_body(StatusCode::OK, &object);
                }
            }
            Event::Error(message) => {
                return Refusal(StatusCode::INTERNAL_SERVER_ERROR, message.to_owned())
                    .into_response();
            }
            Event::Abort => break,
        }
    }
    abort_response()
}
