"""The official Ollama Python client against Seadragon's Ollama API: once with the key in a
bearer header, once with the key in the URL path, as clients without a header setting do.

Run by tests/api/python_clients.rs with SEADRAGON_URL and SEADRAGON_KEY set.
"""

import os

import ollama

base = os.environ["SEADRAGON_URL"]
key = os.environ["SEADRAGON_KEY"]

for label, client in [
    ("bearer", ollama.Client(host=base, headers={"Authorization": f"Bearer {key}"})),
    ("path key", ollama.Client(host=f"{base}/k/{key}")),
]:
    names = [m.model for m in client.list().models]
    assert "qwen2.5-coder:1.5b" in names and "llama3.2:latest" in names, names

    show = client.show("qwen2.5-coder:1.5b")
    assert "tools" in show.capabilities, show
    assert show.modelinfo["qwen2.context_length"] == 32768, show

    answer = client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert answer.message.content == "Hello from the fake Ollama.", answer
    assert answer.done and answer.done_reason == "stop", answer

    parts = list(
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert "".join(p.message.content for p in parts) == "Hello from the fake Ollama.", parts
    assert parts[-1].done and parts[-1].eval_count > 0, parts[-1]

    tool = client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "#tool weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    assert tool.message.tool_calls[0].function.arguments == {"city": "Tokyo"}, tool

    fim = client.generate(
        model="qwen2.5-coder:1.5b", prompt="def add(a, b):\n    return ", suffix="\n"
    )
    assert fim.response == "a + b", fim
    raw = client.generate(
        model="qwen2.5-coder:1.5b",
        prompt="<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>",
        raw=True,
        stream=True,
    )
    assert "".join(p.response for p in raw) == "a + b"

    vectors = client.embed(model="nomic-embed-text", input=["a", "b c"])
    assert len(vectors.embeddings) == 2, vectors

    loaded = [m.model for m in client.ps().models]
    assert "llama3.2:latest" in loaded, loaded

    try:
        client.pull("mistral")
        raise AssertionError("a pull of a missing model succeeded")
    except ollama.ResponseError as e:
        assert e.status_code == 403 and "does not pull models" in e.error, e
    print(f"ollama client ({label}): ok")

try:
    ollama.Client(host=base).list()
    raise AssertionError("no key was accepted")
except ollama.ResponseError as e:
    assert e.status_code == 401, e
print("ollama client without a key: 401 ok")
