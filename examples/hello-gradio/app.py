import time

import gradio as gr


def greet(name):
    return f"Hello, {name}!"


def count(n):
    for i in range(1, int(n) + 1):
        time.sleep(0.1)
        yield f"{i}"


def describe(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.count(b"\n")
    return f"{len(data)} bytes, {lines} lines"


with gr.Blocks(title="Hello Gradio") as demo:
    with gr.Tab("Greet"):
        name = gr.Textbox(label="Name")
        out = gr.Textbox(label="Greeting")
        gr.Button("Greet").click(greet, name, out, api_name="greet")
    with gr.Tab("Count"):
        n = gr.Number(value=5, label="Up to")
        counted = gr.Textbox(label="Count")
        gr.Button("Count").click(count, n, counted, api_name="count")
    with gr.Tab("File"):
        f = gr.File(label="A file", type="filepath")
        info = gr.Textbox(label="What it holds")
        gr.Button("Describe").click(describe, f, info, api_name="describe")

demo.launch()
