# DAC application image: ASGI workers under uvicorn. See docs/deploy.md.
# The CSS is built ahead (static/css/app.css is committed), so the image needs no Node.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=dac.settings

WORKDIR /app

# Dependencies first so that code changes do not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Run as an unprivileged user; var/ is the only place the app writes (local Qdrant fallback).
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin dac \
    && mkdir -p /app/var \
    && chown dac:dac /app/var
USER dac

EXPOSE 8000

# Roles and database (idempotent), migrations as the owner role, the RLS check as the runtime
# role, then the server; `exec` replaces the shell so uvicorn is PID 1 and gets SIGTERM. On
# SIGTERM the open requests get 10 s, then the answers still running DAC_SHUTDOWN_GRACE_SECONDS
# (docs/deploy.md, "Workers and scaling"; docker-compose.yml's stop_grace_period covers both).
CMD ["sh", "-c", "python scripts/db_bootstrap.py && python manage.py migrate && python manage.py check_rls && exec uvicorn dac.asgi:application --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY:-2} --timeout-graceful-shutdown 10"]
