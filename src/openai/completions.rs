//! `/v1/completions` (the legacy text completions that IDE autocompletion uses) ⇄ Ollama's
//! native `/api/generate`.
//!
//! Ollama's own `/v1/completions` applies the model's chat template to the prompt, which
//! wraps an IDE's already formatted fill-in-the-middle prompt a second time. Here a prompt
//! without `suffix` is sent `raw`, exactly as written; with a `suffix`, Ollama's template
//! does the fill-in-the-middle formatting, so the template is kept.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::Usage;
use super::request::{
    RequestError, Sampling, ServiceTier, Stop, options, serde_error, service_tier,
};

/// A validated completions request.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    /// The model name as the client sent it.
    pub model: String,
    /// Whether the client wants SSE.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The service tier the client chose.
    pub service_tier: ServiceTier,
    native: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawRequest {
    model: String,
    prompt: Option<Prompt>,
    suffix: Option<String>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    stop: Option<Stop>,
    echo: Option<bool>,
    n: Option<u32>,
    best_of: Option<u32>,
    service_tier: Option<String>,
    priority: Option<i64>,
    options: Option<Map<String, Value>>,
    keep_alive: Option<Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<String>),
}

impl CompletionRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw: RawRequest = serde_path_to_error::deserialize(&mut de).map_err(serde_error)?;
        if raw.model.trim().is_empty() {
            return Err(RequestError::new(
                "model",
                "you must provide a model parameter",
            ));
        }
        let prompt = match raw.prompt {
            None => String::new(),
            Some(Prompt::One(prompt)) => prompt,
            Some(Prompt::Many(mut prompts)) if prompts.len() <= 1 => {
                prompts.pop().unwrap_or_default()
            }
            Some(Prompt::Many(_)) => {
                return Err(RequestError::new(
                    "prompt",
                    "only one prompt per request is supported",
                ));
            }
        };
        if raw.echo == Some(true) {
            return Err(RequestError::new("echo", "echo is not supported"));
        }
        if raw.n.is_some_and(|n| n != 1) || raw.best_of.is_some_and(|n| n != 1) {
            return Err(RequestError::new(
                "n",
                "only n = 1 (and best_of = 1) is supported",
            ));
        }
        if raw.max_tokens == Some(0) {
            return Err(RequestError::new(
                "max_tokens",
                "max_tokens must be at least 1",
            ));
        }
        let service_tier = service_tier(raw.service_tier.as_deref(), raw.priority)?;
        let mut native = Map::new();
        native.insert("prompt".into(), Value::String(prompt));
        match raw.suffix.filter(|s| !s.is_empty()) {
            Some(suffix) => {
                native.insert("suffix".into(), Value::String(suffix));
            }
            None => {
                native.insert("raw".into(), Value::Bool(true));
            }
        }
        native.insert("stream".into(), Value::Bool(true));
        let options = options(
            raw.options.unwrap_or_default(),
            &Sampling {
                max_tokens: raw.max_tokens,
                temperature: raw.temperature,
                top_p: raw.top_p,
                seed: raw.seed,
                frequency_penalty: raw.frequency_penalty,
                presence_penalty: raw.presence_penalty,
                stop: raw.stop,
            },
        )?;
        if !options.is_empty() {
            native.insert("options".into(), Value::Object(options));
        }
        if let Some(keep_alive) = raw.keep_alive.filter(|v| !v.is_null()) {
            native.insert("keep_alive".into(), keep_alive);
        }
        Ok(Self {
            model: raw.model,
            stream: raw.stream.unwrap_or(false),
            include_usage: raw
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            service_tier,
            native,
        })
    }

    /// The native `/api/generate` body for the resolved model, always streaming.
    pub fn native_body(&self, model: &str) -> Result<Box<RawValue>, serde_json::Error> {
        let mut body = self.native.clone();
        body.insert("model".into(), Value::String(model.to_owned()));
        serde_json::value::to_raw_value(&body)
    }
}

/// What every object of one completion repeats.
#[derive(Debug, Clone)]
pub struct CompletionMeta {
    /// `cmpl-...`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model name as the client asked for it.
    pub model: String,
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

impl CompletionMeta {
    fn object(&self, choice: Option<Choice<'_>>, usage: Option<Usage>) -> String {
        to_json(&TextCompletion {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            choices: choice.into_iter().collect(),
            usage,
        })
    }

    /// A streamed chunk of text.
    pub fn text_chunk(&self, text: &str) -> String {
        self.object(Some(choice(text, None)), None)
    }

    /// The streamed chunk that ends the choice.
    pub fn finish_chunk(&self, finish_reason: &str) -> String {
        self.object(Some(choice("", Some(finish_reason))), None)
    }

    /// The usage chunk (`choices: []`), sent only when the client asked for it.
    pub fn usage_chunk(&self, usage: Usage) -> String {
        self.object(None, Some(usage))
    }

    /// The whole completion of a non-streamed request.
    pub fn completion(&self, text: &str, finish_reason: &str, usage: Usage) -> String {
        self.object(Some(choice(text, Some(finish_reason))), Some(usage))
    }
}

fn choice<'a>(text: &'a str, finish_reason: Option<&'a str>) -> Choice<'a> {
    Choice {
        text,
        index: 0,
        logprobs: None,
        finish_reason,
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Plain structs with string keys: serialising cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(body: &str) -> Value {
        let request = CompletionRequest::parse(body.as_bytes()).unwrap();
        serde_json::from_str(request.native_body("m:latest").unwrap().get()).unwrap()
    }

    #[test]
    fn a_prompt_without_suffix_is_sent_raw_with_its_sampling() {
        let body = native(
            r#"{"model":"m","prompt":"<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>","max_tokens":64,
                "temperature":0.01,"stop":["<|endoftext|>"],"seed":7,"top_p":0.5,"stream":true}"#,
        );
        assert_eq!(body["raw"], true);
        assert!(body.get("suffix").is_none());
        assert_eq!(body["options"]["num_predict"], 64);
        assert_eq!(body["options"]["stop"][0], "<|endoftext|>");
        assert_eq!(body["options"]["seed"], 7);
        assert_eq!(body["model"], "m:latest");
    }

    #[test]
    fn a_suffix_keeps_the_template() {
        let body = native(r#"{"model":"m","prompt":"def f(","suffix":")\n"}"#);
        assert_eq!(body["suffix"], ")\n");
        assert!(body.get("raw").is_none());
    }

    #[test]
    fn echo_and_several_prompts_are_refused() {
        for body in [
            r#"{"model":"m","prompt":"a","echo":true}"#,
            r#"{"model":"m","prompt":["a","b"]}"#,
            r#"{"model":"m","prompt":"a","n":2}"#,
            r#"{"model":"","prompt":"a"}"#,
        ] {
            assert!(CompletionRequest::parse(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn chunks_are_text_completions() {
        let meta = CompletionMeta {
            id: "cmpl-1".into(),
            created: 1,
            model: "m".into(),
        };
        assert_eq!(
            meta.text_chunk("x"),
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"x","index":0,"logprobs":null,"finish_reason":null}]}"#
        );
        assert!(
            meta.usage_chunk(Usage::new(1, 2))
                .contains(r#""choices":[],"usage""#)
        );
    }
}
