//! The job's deltas as a Responses object and its SSE events, in OpenAI's order:
//! `response.created`, `response.in_progress`, then per output item `output_item.added`,
//! its content events (`content_part.added`, `output_text.delta` ..., or
//! `function_call_arguments.delta`/`.done`, or `reasoning_text.delta`), `output_item.done`,
//! and finally `response.completed` (or `response.incomplete` at the token limit) with usage.
//! Every event carries a `sequence_number`; item ids stay the same from `added` to the final
//! response, which the SDKs check.

use serde_json::{Value, json};

use super::request::Echo;
use crate::openai::{Delta, ErrorDetail, ToolCall, Usage};

/// One SSE event: its `event:` name and its `data:` JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event type, also in the data's `type`.
    pub kind: &'static str,
    /// The JSON.
    pub data: String,
}

/// The item being written: text and reasoning arrive in pieces, function calls whole.
#[derive(Debug)]
enum Open {
    Reasoning { id: String, text: String },
    Message { id: String, text: String },
}

/// Builds one response from the deltas of a job.
#[derive(Debug)]
pub struct ResponseBuilder {
    id: String,
    created_at: u64,
    model: String,
    echo: Echo,
    sequence: u64,
    output: Vec<Value>,
    open: Option<Open>,
    status: &'static str,
    usage: Option<Usage>,
}

fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", crate::ids::random_alphanumeric(32))
}

impl ResponseBuilder {
    /// A response `resp_...` for `model` (as the client named it).
    pub fn new(created_at: u64, model: String, echo: Echo) -> Self {
        Self {
            id: random_id("resp"),
            created_at,
            model,
            echo,
            sequence: 0,
            output: Vec::new(),
            open: None,
            status: "in_progress",
            usage: None,
        }
    }

    fn event(&mut self, kind: &'static str, mut data: Value) -> Event {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        Event {
            kind,
            data: data.to_string(),
        }
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self) -> Vec<Event> {
        let response = self.response();
        vec![
            self.event("response.created", json!({ "response": response })),
            self.event("response.in_progress", json!({ "response": response })),
        ]
    }

    /// The events of one delta: reasoning first, then text, then whole function calls.
    pub fn push(&mut self, delta: &Delta) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(text) = delta.reasoning.as_deref().filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(Open::Reasoning { .. })) {
                self.close(&mut events);
                let id = random_id("rs");
                let item = json!({"id": id, "type": "reasoning", "summary": []});
                let index = self.output.len();
                events.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                ));
                self.open = Some(Open::Reasoning {
                    id,
                    text: String::new(),
                });
            }
            let index = self.output.len();
            if let Some(Open::Reasoning { id, text: all }) = &mut self.open {
                all.push_str(text);
                let data = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text});
                events.push(self.event("response.reasoning_text.delta", data));
            }
        }
        if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(Open::Message { .. })) {
                self.close(&mut events);
                let id = random_id("msg");
                let index = self.output.len();
                let item = json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []});
                events.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                ));
                let part = json!({"type": "output_text", "text": "", "annotations": []});
                let data =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
                events.push(self.event("response.content_part.added", data));
                self.open = Some(Open::Message {
                    id,
                    text: String::new(),
                });
            }
            let index = self.output.len();
            if let Some(Open::Message { id, text: all }) = &mut self.open {
                all.push_str(text);
                let data = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []});
                events.push(self.event("response.output_text.delta", data));
            }
        }
        for call in &delta.tool_calls {
            self.close(&mut events);
            self.function_call(call, &mut events);
        }
        events
    }

    fn function_call(&mut self, call: &ToolCall, events: &mut Vec<Event>) {
        let id = random_id("fc");
        let index = self.output.len();
        let item = |status: &str, arguments: &str| {
            json!({"id": id, "type": "function_call", "status": status, "call_id": call.id,
                   "name": call.name, "arguments": arguments})
        };
        let added = item("in_progress", "");
        events.push(self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        ));
        let delta = json!({"item_id": id, "output_index": index, "delta": call.arguments});
        events.push(self.event("response.function_call_arguments.delta", delta));
        let done = json!({"item_id": id, "output_index": index, "name": call.name, "arguments": call.arguments});
        events.push(self.event("response.function_call_arguments.done", done));
        let finished = item("completed", &call.arguments);
        events.push(self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": finished}),
        ));
        self.output.push(finished);
    }

    /// Ends the open item with its `done` events.
    fn close(&mut self, events: &mut Vec<Event>) {
        let index = self.output.len();
        let item = match self.open.take() {
            None => return,
            Some(Open::Reasoning { id, text }) => {
                let data =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text});
                events.push(self.event("response.reasoning_text.done", data));
                json!({"id": id, "type": "reasoning", "summary": [],
                       "content": [{"type": "reasoning_text", "text": text}]})
            }
            Some(Open::Message { id, text }) => {
                let base = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut done = base.clone();
                done["text"] = json!(text);
                done["logprobs"] = json!([]);
                events.push(self.event("response.output_text.done", done));
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                let mut part_done = base;
                part_done["part"] = part.clone();
                events.push(self.event("response.content_part.done", part_done));
                json!({"id": id, "type": "message", "status": "completed", "role": "assistant", "content": [part]})
            }
        };
        events.push(self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        ));
        self.output.push(item);
    }

    /// The closing events: the open item's, then `response.completed` (or
    /// `response.incomplete` when the token limit cut the answer).
    pub fn finish(&mut self, finish_reason: &str, usage: Usage) -> Vec<Event> {
        let mut events = Vec::new();
        self.close(&mut events);
        self.usage = Some(usage);
        let (status, kind) = if finish_reason == "length" {
            ("incomplete", "response.incomplete")
        } else {
            ("completed", "response.completed")
        };
        self.status = status;
        let response = self.response();
        events.push(self.event(kind, json!({ "response": response })));
        events
    }

    /// The `error` event that ends a failed stream.
    pub fn error(&mut self, error: &ErrorDetail) -> Event {
        let data = json!({"code": error.code, "message": error.message, "param": error.param});
        self.event("error", data)
    }

    /// The response object in its current state.
    pub fn response(&self) -> Value {
        let usage = self.usage.map(|u| {
            json!({"input_tokens": u.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": u.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": u.total_tokens})
        });
        let incomplete =
            (self.status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
        let format = if self.echo.text_format.is_null() {
            json!({"type": "text"})
        } else {
            self.echo.text_format.clone()
        };
        json!({"id": self.id, "object": "response", "created_at": self.created_at,
               "status": self.status, "error": null, "incomplete_details": incomplete,
               "instructions": self.echo.instructions, "max_output_tokens": self.echo.max_output_tokens,
               "model": self.model, "output": self.output,
               "parallel_tool_calls": self.echo.parallel_tool_calls,
               "previous_response_id": null,
               "reasoning": {"effort": self.echo.effort, "summary": null},
               "store": false, "temperature": self.echo.temperature, "text": {"format": format},
               "tool_choice": self.echo.tool_choice, "tools": self.echo.tools,
               "top_p": self.echo.top_p, "truncation": "disabled", "usage": usage,
               "metadata": self.echo.metadata})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn events_follow_openais_order_and_items_keep_their_ids() {
        let mut b = ResponseBuilder::new(1, "m".into(), Echo::default());
        let mut all = b.start();
        all.extend(b.push(&Delta {
            reasoning: Some("hmm".into()),
            ..Delta::default()
        }));
        all.extend(b.push(&Delta {
            content: Some("O".into()),
            ..Delta::default()
        }));
        all.extend(b.push(&Delta {
            content: Some("K".into()),
            ..Delta::default()
        }));
        let call = ToolCall {
            index: 0,
            id: "call_1".into(),
            name: "shell".into(),
            arguments: "{}".into(),
        };
        all.extend(b.push(&Delta {
            tool_calls: vec![call],
            ..Delta::default()
        }));
        all.extend(b.finish("stop", Usage::new(3, 4)));
        assert_eq!(
            kinds(&all),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let data: Vec<Value> = all
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        assert!(
            data.iter()
                .enumerate()
                .all(|(i, d)| d["sequence_number"] == i)
        );
        let completed = &data.last().unwrap()["response"];
        assert_eq!(completed["output"][1]["content"][0]["text"], "OK");
        assert_eq!(completed["output"][1]["id"], data[6]["item"]["id"]);
        assert_eq!(completed["output"][2]["call_id"], "call_1");
        assert_eq!(completed["usage"]["output_tokens"], 4);
        assert_eq!(completed["id"], data[0]["response"]["id"]);
    }

    #[test]
    fn the_token_limit_makes_the_response_incomplete() {
        let mut b = ResponseBuilder::new(1, "m".into(), Echo::default());
        let events = b.finish("length", Usage::default());
        assert_eq!(events[0].kind, "response.incomplete");
        assert_eq!(
            b.response()["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }
}
