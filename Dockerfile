# forecaster on an NVIDIA GPU (or the CPU): docker build -t forecaster . && docker run --gpus all --rm forecaster
# Current JAX needs Python 3.12; the cuda12 extra keeps Pascal cards (GTX 1060, SM 6.1) working.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY conf ./conf
COPY forecaster ./forecaster
RUN pip install ".[cuda12]"

# Runs, MLflow store and caches go to /work: mount it to keep them (-v "$PWD/work":/work).
WORKDIR /work
ENTRYPOINT ["python", "-m", "forecaster"]
CMD ["mode=dryrun"]
