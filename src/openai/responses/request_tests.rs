//! Tests of the Responses request mapping.

use super::*;

fn native(body: &Value) -> Value {
    let request = ResponsesRequest::parse(body.to_string().as_bytes()).unwrap();
    serde_json::from_str(request.native_body("m").unwrap().get()).unwrap()
}

#[test]
fn codex_items_become_one_conversation() {
    let body = native(
        &json!({"model": "m", "instructions": "Be brief.", "max_output_tokens": 9,
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"}]},
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
            {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
            {"role": "user", "content": "thanks"}],
        "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": false},
                  {"type": "web_search"}],
        "reasoning": {"effort": "medium"}, "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}}),
    );
    let m = body["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(m[1]["content"], "ls");
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"]["command"][0],
        "ls"
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "content": "a.txt", "tool_call_id": "c1", "tool_name": "shell"})
    );
    assert_eq!(m[4], json!({"role": "user", "content": "thanks"}));
    assert_eq!(body["tools"].as_array().unwrap().len(), 1);
    assert_eq!(body["options"]["num_predict"], 9);
    assert_eq!(body["think"], "medium");
    assert_eq!(body["format"], json!({"type": "object"}));
}

#[test]
fn stored_conversations_and_empty_input_are_refused() {
    for body in [
        json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
        json!({"model": "m", "input": []}),
        json!({"model": "m", "input": [{"type": "web_search_call"}]}),
    ] {
        assert!(
            ResponsesRequest::parse(body.to_string().as_bytes()).is_err(),
            "{body}"
        );
    }
}
