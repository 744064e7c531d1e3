# One image for the API, the workers and the CLI.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY dispatch dispatch
COPY mobile_api mobile_api
COPY geo geo
COPY workers workers
RUN pip install --no-cache-dir .
# A fixed numeric uid: Kubernetes' runAsNonRoot can check it (deploy/k8s runs as 10001).
RUN useradd --system --uid 10001 quanzu
USER 10001
EXPOSE 8000
CMD ["quanzu", "serve", "--host", "0.0.0.0", "--port", "8000"]
