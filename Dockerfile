# Container image of the data service for Azure Functions container hosting (plan 7.1):
# the Functions host with the Python 3.11 worker, the app's runtime requirements and the app.
# Build:  docker build -t cbtrade-data-service .
# Run:    docker run -p 8080:80 -e CBTRADE_STORAGE_BACKEND=local -e CBTRADE_API_KEYS=... \
#           -e AzureWebJobsStorage=<Azurite or account connection> cbtrade-data-service
FROM mcr.microsoft.com/azure-functions/python:4-python3.11

ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Dependencies first, so that a code change reuses this layer.
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt

# The app: function_app.py, host.json and the cbtrade package (.dockerignore leaves out the rest).
COPY . /home/site/wwwroot

# For docker run / compose; Azure's platform probes /api/health itself. 503 (store unreachable)
# counts as unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:80/api/health', timeout=4)"]
