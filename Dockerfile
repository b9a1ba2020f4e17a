# The Sophia suite on its embedded defaults: `sophia up` over streamable HTTP on port 8760, bearer
# tokens required, state in the /data volume. Build with `make image` (its context is dist/image: the
# wheels `make image-context` gathers; the build itself needs no network); run with
#   docker run -d --name sophia -p 127.0.0.1:8760:8760 -v sophia-data:/data sophia:local
#   docker exec sophia sophia token create --name laptop     # printed once
# BASE: any Debian 12 image with python3 (3.11) and its venv module; `make image` makes one when none is given.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS install
# `make image` removes this stage once the image is built (it holds the wheels: ~1.2 GB).
LABEL org.sophia.stage=install
COPY requirements.txt /wheels/
COPY wheels /wheels/
COPY workspace /wheels/workspace/
# The locked third-party wheels against uv.lock's hashes, then the workspace's own (no dev group: no
# pytest, ruff, mypy or embedded PostgreSQL); offline, so a build never reaches an index. No `pip check`:
# uv.lock overrides some requirements away on purpose (pyproject.toml, override-dependencies).
RUN python3 -m venv /opt/sophia \
    && /opt/sophia/bin/pip install --quiet --no-cache-dir --no-index --find-links /wheels --require-hashes \
       --no-deps -r /wheels/requirements.txt \
    && /opt/sophia/bin/pip install --quiet --no-cache-dir --no-index --no-deps /wheels/workspace/*.whl

FROM ${BASE}
COPY --from=install /opt/sophia /opt/sophia
ENV PYTHONUNBUFFERED=1 \
    SOPHIA_HOME=/data \
    PATH=/opt/sophia/bin:$PATH
VOLUME /data
EXPOSE 8760
# Inside the container the host binds every interface (tokens are required off loopback); publish the
# port on the machine's loopback as above, and name the Host headers clients will send.
CMD ["sophia", "up", "--transport", "http", "--host", "0.0.0.0", "--port", "8760", \
     "--allowed-host", "127.0.0.1:8760", "--allowed-host", "localhost:8760"]
