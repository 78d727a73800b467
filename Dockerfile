# One image for every role: `copier seed`, `copier control`, `copier work`, `copier status`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY copier ./copier
COPY controller ./controller
COPY workers ./workers
COPY targets ./targets
RUN pip install . && useradd --create-home --uid 10001 copier
USER copier
ENTRYPOINT ["copier"]
CMD ["--help"]
