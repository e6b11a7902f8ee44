# The production image: gunicorn for the API, the same image for the Celery worker and beat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=config.django.production
WORKDIR /srv/payback
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .
RUN SECRET_KEY=build python manage.py collectstatic --no-input -v 0
RUN useradd --system payback && mkdir -p /srv/payback/var && chown payback /srv/payback/var
USER payback
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "-c", "config/gunicorn.py", "--bind", "0.0.0.0:8000"]
