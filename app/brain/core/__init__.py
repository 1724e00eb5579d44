"""The server's memory: the SQLite store and its migrations, chunking, embedding (local ONNX model or the OpenAI
API) and the background worker, hybrid search, forgetting, the timeline, backups."""
