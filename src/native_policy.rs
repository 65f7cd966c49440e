//! Which of Ollama's own request settings a tier's keys may use. Ollama takes `options` and
//! `keep_alive` from any caller, and some of them reach every tenant: a huge `num_ctx` or a
//! `num_gpu` forces a model reload or runs the GPU out of memory, and `keep_alive: 0` unloads
//! the model for everybody. Every API's request becomes one native Ollama body, so the policy
//! is checked once, on that body, before the job is queued.

use serde_json::{Map, Value};

/// Native options any key may set by default: sampling and output settings that affect only
/// the caller's own answer. `num_ctx` is allowed too, bounded (see [`NativePolicy`]).
pub const DEFAULT_ALLOWED: &[&str] = &[
    "num_ctx",
    "num_predict",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "seed",
    "stop",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "penalize_newline",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
    "num_keep",
];

/// Largest `num_ctx` a tier allows unless it says otherwise (the model's own context length
/// lowers it further when known).
pub const DEFAULT_MAX_NUM_CTX: u64 = 32_768;

/// One tier's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativePolicy {
    /// Option names the tier's keys may set.
    pub allowed: Vec<String>,
    /// Largest `num_ctx`.
    pub max_num_ctx: u64,
    /// Whether a caller's `keep_alive` is passed on (otherwise it is removed and Ollama's own
    /// setting applies).
    pub keep_alive: bool,
}

impl Default for NativePolicy {
    fn default() -> Self {
        Self {
            allowed: DEFAULT_ALLOWED.iter().map(|s| (*s).to_owned()).collect(),
            max_num_ctx: DEFAULT_MAX_NUM_CTX,
            keep_alive: false,
        }
    }
}

/// A refused setting: the parameter, as the client wrote it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `options.num_gpu`, `options.num_ctx`, ...
    pub param: String,
    /// What to change.
    pub message: String,
}

impl NativePolicy {
    /// Applies the policy to a native Ollama body: a refused option is an error naming it; a
    /// caller's `keep_alive` is removed unless allowed. `context_length` is the model's own,
    /// when known.
    pub fn apply(
        &self,
        body: &mut Map<String, Value>,
        context_length: Option<u64>,
    ) -> Result<(), Refused> {
        if !self.keep_alive {
            body.remove("keep_alive");
        }
        let Some(Value::Object(options)) = body.get("options") else {
            return Ok(());
        };
        for (name, value) in options {
            let param = format!("options.{name}");
            if !self.allowed.iter().any(|a| a == name) {
                return Err(Refused {
                    param,
                    message: format!(
                        "the Ollama option '{name}' is not allowed for this key's tier; allowed: {}",
                        self.allowed.join(", ")
                    ),
                });
            }
            if name == "num_ctx" {
                let limit = context_length.map_or(self.max_num_ctx, |c| c.min(self.max_num_ctx));
                match value.as_u64() {
                    Some(n) if (1..=limit).contains(&n) => {}
                    _ => {
                        return Err(Refused {
                            param,
                            message: format!(
                                "options.num_ctx must be a whole number from 1 to {limit} for \
                                 this model and tier"
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn sampling_options_pass_and_gpu_settings_are_refused_by_name() {
        let policy = NativePolicy::default();
        let mut ok = body(json!({"options": {"temperature": 0.2, "seed": 7, "num_ctx": 4096}}));
        assert_eq!(policy.apply(&mut ok, Some(8192)), Ok(()));
        for option in ["num_gpu", "main_gpu", "use_mmap", "use_mlock", "num_thread"] {
            let mut b = body(json!({"options": {option: 1}}));
            let refused = policy.apply(&mut b, None).unwrap_err();
            assert_eq!(refused.param, format!("options.{option}"));
        }
    }

    #[test]
    fn num_ctx_is_bounded_by_the_model_and_the_tier() {
        let policy = NativePolicy::default();
        let mut over_model = body(json!({"options": {"num_ctx": 131_072}}));
        let refused = policy.apply(&mut over_model, Some(8192)).unwrap_err();
        assert!(refused.message.contains("8192"), "{}", refused.message);
        let mut over_tier = body(json!({"options": {"num_ctx": 65_536}}));
        assert!(policy.apply(&mut over_tier, None).is_err());
        let mut not_a_number = body(json!({"options": {"num_ctx": "big"}}));
        assert!(policy.apply(&mut not_a_number, None).is_err());
    }

    #[test]
    fn keep_alive_is_dropped_unless_the_tier_allows_it() {
        let mut b = body(json!({"keep_alive": 0, "model": "m"}));
        NativePolicy::default().apply(&mut b, None).unwrap();
        assert!(!b.contains_key("keep_alive"));
        let open = NativePolicy {
            keep_alive: true,
            ..NativePolicy::default()
        };
        let mut b = body(json!({"keep_alive": "-1"}));
        open.apply(&mut b, None).unwrap();
        assert_eq!(b["keep_alive"], "-1");
    }
}
