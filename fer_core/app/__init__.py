"""The Streamlit app's helpers: page list and shared widgets, charts, training reports, upload
services and the WebRTC configuration. Nothing here imports TensorFlow at module level."""
