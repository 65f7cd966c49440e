use super::*;

fn parse(body: &Value) -> Result<ChatRequest, RequestError> {
    ChatRequest::parse(body.to_string().as_bytes())
}

fn native(body: &Value) -> Value {
    let raw = parse(body).unwrap().native_body("llama3.2:latest").unwrap();
    serde_json::from_str(raw.get()).unwrap()
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[test]
fn omitted_sampling_settings_stay_unset() {
    let n = native(&json!({"model": "m", "messages": user("hi")}));
    assert_eq!(n["model"], "llama3.2:latest");
    assert_eq!(n["stream"], true);
    assert!(n.get("options").is_none(), "{n}");
    assert!(n.get("think").is_none());
}

#[test]
fn sampling_fields_map_to_options_and_max_completion_tokens_wins() {
    let n = native(&json!({
        "model": "m", "messages": user("hi"), "temperature": 0.2, "top_p": 0.5, "seed": 7,
        "max_tokens": 10, "max_completion_tokens": 20, "stop": "END",
        "options": {"num_ctx": 8192, "temperature": 1.5}
    }));
    let o = &n["options"];
    assert_eq!(o["temperature"], 0.2);
    assert_eq!(o["top_p"], 0.5);
    assert_eq!(o["seed"], 7);
    assert_eq!(o["num_predict"], 20);
    assert_eq!(o["stop"], json!(["END"]));
    assert_eq!(o["num_ctx"], 8192);
    let only_max = native(&json!({"model": "m", "messages": user("hi"), "max_tokens": 5}));
    assert_eq!(only_max["options"]["num_predict"], 5);
    // A zero limit is refused even where the other field would win.
    for (zero, other) in [
        ("max_tokens", "max_completion_tokens"),
        ("max_completion_tokens", "max_tokens"),
    ] {
        let bad = parse(&json!({"model": "m", "messages": user("hi"), zero: 0, other: 5}));
        assert_eq!(bad.unwrap_err().param.as_deref(), Some(zero));
    }
}

#[test]
fn response_formats_map_to_ollama_format() {
    let j = native(
        &json!({"model": "m", "messages": user("x"), "response_format": {"type": "json_object"}}),
    );
    assert_eq!(j["format"], "json");
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let s = native(&json!({"model": "m", "messages": user("x"),
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}));
    assert_eq!(s["format"], schema);
    let t =
        native(&json!({"model": "m", "messages": user("x"), "response_format": {"type": "text"}}));
    assert!(t.get("format").is_none());
    let bad =
        parse(&json!({"model": "m", "messages": user("x"), "response_format": {"type": "xml"}}));
    assert_eq!(
        bad.unwrap_err().param.as_deref(),
        Some("response_format.type")
    );
    let named_wrong = parse(&json!({"model": "m", "messages": user("x"),
        "response_format": {"type": "json_schema", "json_schema": {"name": {}, "schema": {}}}}));
    // serde reports errors inside a tagged enum at the enum itself.
    let named_wrong = named_wrong.unwrap_err();
    assert_eq!(named_wrong.param.as_deref(), Some("response_format"));
    assert!(
        named_wrong.message.contains("string"),
        "{}",
        named_wrong.message
    );
}

#[test]
fn reasoning_effort_maps_to_think() {
    let none = native(&json!({"model": "m", "messages": user("x"), "reasoning_effort": "none"}));
    assert_eq!(none["think"], false);
    let high = native(&json!({"model": "m", "messages": user("x"), "reasoning_effort": "high"}));
    assert_eq!(high["think"], "high");
    let bad = parse(&json!({"model": "m", "messages": user("x"), "reasoning_effort": "turbo"}));
    assert_eq!(bad.unwrap_err().param.as_deref(), Some("reasoning_effort"));
}

#[test]
fn image_parts_join_their_message_as_base64() {
    let n = native(
        &json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}
        ]}]}),
    );
    assert_eq!(n["messages"][0]["content"], "what is this?");
    assert_eq!(n["messages"][0]["images"], json!(["aGVsbG8="]));
}

#[test]
fn remote_and_malformed_images_are_refused_with_their_param() {
    for url in [
        "https://x/cat.png",
        "data:image/png;base64,@@@",
        "data:text/plain;base64,aGk=",
    ] {
        let e = parse(
            &json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]}),
        )
        .unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url"),
            "{url}"
        );
    }
}

#[test]
fn tool_calls_and_results_map_to_native_shapes() {
    let n = native(&json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "11 degrees"}
    ], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}));
    let call = &n["messages"][1]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], json!({"city": "Tokyo"}));
    assert_eq!(call["id"], "call_1");
    assert_eq!(n["messages"][1]["content"], "");
    assert_eq!(n["messages"][2]["tool_name"], "get_weather");
    assert_eq!(n["tools"][0]["function"]["name"], "get_weather");
}

#[test]
fn tool_choice_none_sends_no_tools() {
    let n = native(
        &json!({"model": "m", "messages": user("x"), "tool_choice": "none",
        "tools": [{"type": "function", "function": {"name": "f"}}]}),
    );
    assert!(n.get("tools").is_none());
}

#[test]
fn bad_tool_arguments_are_a_client_error() {
    let e = parse(&json!({"model": "m", "messages": [{"role": "assistant", "content": "",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}))
    .unwrap_err();
    assert_eq!(
        e.param.as_deref(),
        Some("messages[0].tool_calls[0].function.arguments")
    );
}

#[test]
fn missing_empty_and_mistyped_fields_name_their_param() {
    let missing = parse(&json!({"model": "m"})).unwrap_err();
    assert_eq!(missing.param.as_deref(), Some("messages"));
    let empty = parse(&json!({"model": "m", "messages": []})).unwrap_err();
    assert_eq!(empty.param.as_deref(), Some("messages"));
    let typed =
        parse(&json!({"model": "m", "messages": [{"role": 1, "content": "x"}]})).unwrap_err();
    assert_eq!(typed.param.as_deref(), Some("messages[0].role"));
    let role = parse(&json!({"model": "m", "messages": [{"role": "critic", "content": "x"}]}))
        .unwrap_err();
    assert_eq!(role.param.as_deref(), Some("messages[0].role"));
    let no_content = parse(&json!({"model": "m", "messages": [{"role": "user"}]})).unwrap_err();
    assert_eq!(no_content.param.as_deref(), Some("messages[0].content"));
    let temp =
        parse(&json!({"model": "m", "messages": user("x"), "temperature": "hot"})).unwrap_err();
    assert_eq!(temp.param.as_deref(), Some("temperature"));
    let syntax = ChatRequest::parse(b"{\"model\": ").unwrap_err();
    assert!(syntax.param.is_none());
}

#[test]
fn flex_and_positive_priority_lower_the_tier_and_nothing_raises_it() {
    let flex =
        parse(&json!({"model": "m", "messages": user("x"), "service_tier": "flex"})).unwrap();
    assert_eq!(flex.service_tier, ServiceTier::Flex);
    let batch = parse(&json!({"model": "m", "messages": user("x"), "priority": 5})).unwrap();
    assert_eq!(batch.service_tier, ServiceTier::Flex);
    let prio =
        parse(&json!({"model": "m", "messages": user("x"), "service_tier": "priority"})).unwrap();
    assert_eq!(prio.service_tier, ServiceTier::Standard);
    let n: Value = serde_json::from_str(prio.native_body("m").unwrap().get()).unwrap();
    assert!(n.get("service_tier").is_none() && n.get("priority").is_none());
}

#[test]
fn unknown_fields_are_ignored_and_stream_flags_are_read() {
    let r = parse(
        &json!({"model": "m", "messages": user("x"), "stream": true, "user": "u",
        "stream_options": {"include_usage": true}, "logit_bias": {}}),
    )
    .unwrap();
    assert!(r.stream && r.include_usage);
}
