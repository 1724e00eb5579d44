from brain.cli.main import main

# guarded: the ingest child (brain.api.ingest_child) is started with multiprocessing's "spawn",
# which may import the main module again; unguarded, that import would run the command line twice
if __name__ == "__main__":
    main()
