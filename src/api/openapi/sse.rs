//! The server-sent events of the streaming routes, as the document describes them. In OpenAPI
//! 3.1 the schema of a `text/event-stream` response describes one event (its `data`, `event`,
//! `id` and `retry` fields), and `contentMediaType` with `contentSchema` say what the `data`
//! string holds; validators such as schemathesis check every event of a stream against it.
//! A stream's comments (`: queued position=...`) are not events, so they need no schema.

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// A `data` string that holds JSON of `content`.
fn json_data(content: RefOr<Schema>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .content_schema(Some(content))
}

/// An event whose `data` is one of `chunk` or an in-band error, or the final `[DONE]`.
fn chunk_event(chunk: &str) -> RefOr<Schema> {
    let json = AnyOfBuilder::new()
        .item(Ref::from_schema_name(chunk))
        .item(Ref::from_schema_name("ErrorResponse"));
    let done = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["[DONE]"]));
    let data = AnyOfBuilder::new()
        .item(done)
        .item(json_data(json.into()))
        .description(Some(format!(
            "A `{chunk}` as JSON, an in-band error (`{{\"error\": {{...}}}}`) once the stream \
             has started, or `[DONE]` at the end."
        )));
    ObjectBuilder::new()
        .property("data", data)
        .required("data")
        .into()
}

/// One event of `POST /v1/chat/completions` with `stream: true`.
#[derive(Debug)]
pub struct ChatCompletionEvent;

impl PartialSchema for ChatCompletionEvent {
    fn schema() -> RefOr<Schema> {
        chunk_event("ChatCompletionChunk")
    }
}

impl ToSchema for ChatCompletionEvent {}

/// One event of `POST /v1/completions` with `stream: true`.
#[derive(Debug)]
pub struct TextCompletionEvent;

impl PartialSchema for TextCompletionEvent {
    fn schema() -> RefOr<Schema> {
        chunk_event("TextCompletion")
    }
}

impl ToSchema for TextCompletionEvent {}

/// One event of `POST /v1/responses` with `stream: true`: its name in `event` and the same
/// name in the JSON object's `type` (`response.created`, `response.output_text.delta`, ...).
#[derive(Debug)]
pub struct ResponseStreamEvent;

impl PartialSchema for ResponseStreamEvent {
    fn schema() -> RefOr<Schema> {
        let object = ObjectBuilder::new()
            .property("type", ObjectBuilder::new().schema_type(Type::String))
            .required("type");
        let data = json_data(object.into()).description(Some(
            "The event's object as JSON, with `type` and `sequence_number`.",
        ));
        ObjectBuilder::new()
            .property("event", ObjectBuilder::new().schema_type(Type::String))
            .required("event")
            .property("data", data)
            .required("data")
            .into()
    }
}

impl ToSchema for ResponseStreamEvent {}
