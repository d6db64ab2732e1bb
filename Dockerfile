# The dashboard as a container, built from this repository's own files (the shipped models included):
#   docker build -t fer-dashboard .
#   docker run --rm -p 8501:8501 fer-dashboard
# Then open http://localhost:8501. Settings are environment variables (README, "Settings"), e.g.
#   docker run -p 8501:8501 -e FER_ICE_SERVERS='[{"urls": "stun:stun.example.org:3478"}]' fer-dashboard
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The runtime requirements first, so editing the code does not reinstall TensorFlow.
COPY requirements.txt /tmp/requirements.txt
RUN python -m pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# An unprivileged user; its home holds the dataset cache (FER_CACHE_DIR defaults to ~/.cache/fer_core).
RUN useradd --create-home --uid 10001 fer
WORKDIR /app
COPY --chown=fer:fer . /app
# Secrets never enter the image: .dockerignore leaves secrets.toml out, and the build stops if one got in
# anyway. Give a container its secrets at run time: -v /path/secrets.toml:/app/.streamlit/secrets.toml:ro
RUN if find /app -name secrets.toml | grep -q .; then \
        echo "secrets.toml is in the build context: remove it (docs/security.md)" >&2; exit 1; fi
USER fer

EXPOSE 8501
# Streamlit answers "ok" on /_stcore/health once the server is up; python is there, curl is not.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "streamlit_app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
