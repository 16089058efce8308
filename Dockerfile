FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY schema schema
COPY resolvers resolvers
COPY jobs jobs
COPY alembic alembic
RUN pip install --no-cache-dir -e .
ENV DATA_DIR=/data
VOLUME /data
EXPOSE 8000
CMD ["terrafusion", "serve", "--host", "0.0.0.0", "--no-worker", "--no-demo"]
