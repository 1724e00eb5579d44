"""``python -m brain``: the command line."""

# imported inside the guard: the ingest child (brain.api.ingest_child) is started with
# multiprocessing's "spawn", which imports the main module again as ``__mp_main__``; unguarded, that
# import would run the command line twice, and at the top it would cost the child 0.25 s of imports
# before it lowers its priority
if __name__ == "__main__":
    from brain.cli.main import main

    main()
