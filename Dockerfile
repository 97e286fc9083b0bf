# The BYR Corpus Ledger services (API, workers, trainer) in one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    ETH_HASH_BACKEND=pysha3 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    BYR_HOME=/data

RUN apt-get update && apt-get install -y --no-install-recommends build-essential curl \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY contracts ./contracts
COPY ledger ./ledger
COPY ingest ./ingest
COPY trainer ./trainer
COPY api ./api
COPY examples ./examples
RUN uv sync --frozen --no-dev

ENV PATH="/app/.venv/bin:${PATH}"
VOLUME ["/data"]
ENTRYPOINT ["byr"]
CMD ["--help"]
