# SocialPulse image for docker-compose: the web server, scoring workers and demo producer.
FROM python:3.11-slim
WORKDIR /srv/socialpulse
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY insights ./insights
COPY archive ./archive
COPY streaming ./streaming
COPY models ./models
COPY templates ./templates
COPY static ./static
# Editable, so templates/ and static/ beside the code are found.
RUN pip install --no-cache-dir --no-deps -e .
ENV SOCIALPULSE_MODEL_DIR=/data/models SOCIALPULSE_INSTANCE_DIR=/data/instance
VOLUME ["/data"]
ENTRYPOINT ["socialpulse"]
CMD ["serve", "--host", "0.0.0.0"]
