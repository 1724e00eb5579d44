"""Pieces both sides of the brain use: settings, time and time-zone helpers, forget rules, timeline text, progress.

Laptop code (collect, client, mcp) and server code (core, rag, gpu, api) may both import from here; this
package imports neither."""
