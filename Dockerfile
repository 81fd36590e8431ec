FROM python:3.11-slim
# DJANGO_ENV=production: no development key, HTTPS-only defaults, collected static files.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_ENV=production
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir -e . \
 && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput \
 && useradd --system --no-create-home --uid 10001 teamchat \
 && mkdir -p var/attachments && chown -R teamchat var
# Not root: a web process or worker that is broken into is then not root in the
# container either (and Celery warns on every start when it runs as root).
USER teamchat
EXPOSE 8000
CMD ["python", "-m", "chatsite.web", "-b", "0.0.0.0", "-p", "8000", "chatsite.asgi:application"]
