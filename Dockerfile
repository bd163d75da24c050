# One image for the three services; the command picks one (compose.yaml sets it per service):
#   docker run ... biometrics-pipeline                        # the producer (default)
#   docker run ... biometrics-pipeline biometrics-consumer    # the consumer
#   docker run ... biometrics-pipeline biometrics-zones       # the heart-rate zone processor
# Where no registry is reachable, build a base locally and pass it in:
#   docker build --build-arg PYTHON_IMAGE=my-python:3.11 .
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric id, so orchestrators that check runAsNonRoot can see it is not root.
RUN groupadd --system --gid 10001 biometrics \
    && useradd --system --uid 10001 --gid biometrics --create-home --shell /usr/sbin/nologin biometrics

WORKDIR /src

# Dependencies first, read from pyproject.toml: this layer is rebuilt only when they change,
# not on every source edit.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY shared/ shared/
COPY producer_service/ producer_service/
COPY consumer_service/ consumer_service/
COPY zones_service/ zones_service/
RUN pip install --no-cache-dir . && rm -rf build ./*.egg-info

# The services read settings.toml and .secrets.toml from the working directory. /app holds no
# source, so imports come from the installed package. .secrets.toml carries placeholders only:
# give real credentials as BIOMETRICS_KAFKA__SASL_USERNAME / BIOMETRICS_KAFKA__SASL_PASSWORD.
WORKDIR /app
COPY settings.toml .secrets.toml ./

# Inside a container the default 127.0.0.1 cannot be reached through a published port.
ENV BIOMETRICS_HTTP__HOST=0.0.0.0 \
    BIOMETRICS_CONSUMER__PROBE_HOST=0.0.0.0 \
    BIOMETRICS_ZONES__PROBE_HOST=0.0.0.0
# 8000: the producer's API; 8001 and 8002: the consumer's and the zone processor's /metrics,
# /healthz and /readyz.
EXPOSE 8000 8001 8002

USER 10001:10001
CMD ["biometrics-producer"]
