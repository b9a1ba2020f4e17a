# The Sophia suite on its embedded defaults: `sophia up` over streamable HTTP on port 8760, bearer
# tokens required, state in the /data volume. Build with `make image`; run with
#   docker run -d --name sophia -p 127.0.0.1:8760:8760 -v sophia-data:/data sophia:local
#   docker exec sophia sophia token create --name laptop     # printed once
# BASE: any Debian 12 image with python3 (3.11) and its venv module.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/sophia \
    PYTHONUNBUFFERED=1 \
    SOPHIA_HOME=/data \
    PATH=/opt/sophia/bin:/opt/uv/bin:$PATH

# uv in a venv of its own: works on python:*-slim and on Debian's python3 (which refuses a global pip).
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir uv==0.13.9

WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY shared shared
COPY host host
COPY servers servers
# The run-time suite only: no dev group (pytest, ruff, mypy, embedded PostgreSQL).
RUN uv sync --all-packages --frozen --no-dev --no-editable \
    && rm -rf /root/.cache

VOLUME /data
EXPOSE 8760
# Inside the container the host binds every interface (tokens are required off loopback); publish the
# port on the machine's loopback as above, and name the Host headers clients will send.
CMD ["sophia", "up", "--transport", "http", "--host", "0.0.0.0", "--port", "8760", \
     "--allowed-host", "127.0.0.1:8760", "--allowed-host", "localhost:8760"]
