"""The official OpenAI Python SDK against Seadragon: completions, embeddings, responses.

Run by tests/api/python_clients.rs with SEADRAGON_URL and SEADRAGON_KEY set; any failed
check raises, and the exit status tells the Rust test.
"""

import os

import openai

base = os.environ["SEADRAGON_URL"]
key = os.environ["SEADRAGON_KEY"]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)

# Void-style FIM: prompt + suffix, one object.
done = client.completions.create(
    model="qwen2.5-coder:1.5b",
    prompt="def add(a, b):\n    return ",
    suffix="\n\nprint(add(1, 2))\n",
    max_tokens=300,
    stop=["\n\n"],
)
assert done.object == "text_completion", done
assert done.choices[0].text == "a + b", done
assert done.usage.completion_tokens > 0, done
print("completions.create: ok")

# Continue-style autocompletion: a raw FIM prompt, streamed, with usage.
stream = client.completions.create(
    model="qwen2.5-coder:1.5b",
    prompt="<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n<|fim_middle|>",
    max_tokens=64,
    temperature=0.01,
    stream=True,
    stream_options={"include_usage": True},
)
chunks = list(stream)
text = "".join(c.choices[0].text for c in chunks if c.choices)
assert text == "a + b", text
assert chunks[-1].usage.total_tokens > 0, chunks[-1]
print("completions.create(stream=True): ok")

# Embeddings: the SDK asks for base64 and decodes it itself.
embedded = client.embeddings.create(
    model="nomic-embed-text", input=["function foo() { return 1; }", "class Bar {}"]
)
assert [d.index for d in embedded.data] == [0, 1], embedded
assert all(len(d.embedding) == 8 for d in embedded.data), embedded
floats = client.embeddings.create(
    model="nomic-embed-text", input="class Bar {}", encoding_format="float", dimensions=8
)
assert all(
    abs(a - b) < 1e-6 for a, b in zip(floats.data[0].embedding, embedded.data[1].embedding)
), (floats, embedded)
assert embedded.usage.prompt_tokens > 0
print("embeddings.create: ok")

# Responses, not streamed.
response = client.responses.create(
    model="llama3.2", instructions="Be brief.", input="Say hello", store=False
)
assert response.status == "completed", response
assert response.output_text == "Hello from the fake Ollama.", response
assert response.usage.output_tokens > 0, response
print("responses.create: ok")

# Responses streamed through the SDK's accumulating helper, with a function tool.
tools = [
    {
        "type": "function",
        "name": "shell",
        "description": "Run a command",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "array", "items": {"type": "string"}}},
            "required": ["command"],
        },
        "strict": False,
    }
]
with client.responses.stream(
    model="llama3.2", input=[{"role": "user", "content": "#tool run ls"}], tools=tools
) as stream:
    kinds = [event.type for event in stream]
    final = stream.get_final_response()
assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
assert "response.function_call_arguments.done" in kinds, kinds
call = final.output[0]
assert call.type == "function_call" and call.name == "shell", final
print("responses.stream (function call): ok")

with client.responses.stream(model="qwen3:8b", input="#think Say OK", reasoning={"effort": "low"}) as stream:
    deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
    final = stream.get_final_response()
assert "".join(deltas) == final.output_text == "Hello from the fake Ollama.", final
assert [item.type for item in final.output] == ["reasoning", "message"], final
print("responses.stream (reasoning): ok")

try:
    client.responses.create(model="llama3.2", input="hi", previous_response_id="resp_1")
    raise AssertionError("previous_response_id was accepted")
except openai.BadRequestError as e:
    assert "previous_response_id" in str(e), e
print("responses.create(previous_response_id): 400 ok")
