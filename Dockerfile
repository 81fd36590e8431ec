FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir -e . \
 && DJANGO_SECRET_KEY=build-only DJANGO_DEBUG=false python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["python", "-m", "chatsite.web", "-b", "0.0.0.0", "-p", "8000", "chatsite.asgi:application"]
