# Serving image: gunicorn + Flask + ONNX Runtime on the CPU, without torch.
#
#   docker build -t mnist-digits .
#   docker run -p 8000:8000 -v /path/to/mnist:/data/mnist:ro mnist-digits
#
# The MNIST test files are not in the image: mount them at /data/mnist (MNIST_DIR), or
# build an image that adds them. The server stops at start-up if they are missing.
#
# NOTE: this file has not been built here, because the development machine has no
# docker. tests/test_ops.py checks that every COPY source exists and that a virtual
# environment with only requirements-serve.txt imports wsgi without torch.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY requirements-serve.txt ./
RUN pip install -r requirements-serve.txt

# The web app imports train.data (the IDX reader, NumPy only) but no other part of train/.
COPY train/__init__.py train/data.py ./train/
COPY webapp/ ./webapp/
COPY templates/ ./templates/
COPY static/ ./static/
COPY models/ ./models/
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --system --uid 10001 --no-create-home app
USER app

# gunicorn.conf.py sizes the workers from the CPUs the container may use
# (workers x ORT_INTRA_OP_THREADS <= cores); WEB_CONCURRENCY overrides the worker count.
ENV GUNICORN_BIND=0.0.0.0:8000 \
    MNIST_DIR=/data/mnist \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
EXPOSE 8000

# Liveness: /healthz answers while the process serves. Point a load balancer's readiness
# check at /readyz instead, which also requires the model and test set to be loaded.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["gunicorn", "wsgi:app"]
