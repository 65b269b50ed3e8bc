import streamlit as st

st.title("Hello Streamlit")

if "clicks" not in st.session_state:
    st.session_state.clicks = 0
if st.button("Click me"):
    st.session_state.clicks += 1
st.write(f"Clicked {st.session_state.clicks} times")

name = st.text_input("Your name")
if name:
    st.write(f"Hello, {name}!")

upload = st.file_uploader("A text file")
if upload is not None:
    st.code(upload.getvalue().decode("utf-8", "replace"))
