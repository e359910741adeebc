"""Search: the galaxies nearest to a query (the Milky Way by default) in a model's embedding or in pixels, from a
few thousand images held in memory to a survey embedded on Ray workers and indexed on disk.

Its modules, each importing only those listed before it:
- embedding: a run opened for search (its model, the gallery's images, the embedding) and images → vectors;
- gallery: a gallery of vectors in memory, its exact or HNSW FAISS index, its .npz file;
- shards: a whole survey embedded on Ray workers into Parquet shards (`evaluate.py embed`);
- index: the shards indexed on disk (`evaluate.py index`); `load_index` and `open_gallery` open any saved index;
- milky_way: the Milky Way as a query, observed the way the gallery was;
- queries: a query's k nearest images as rows, a table and neighbours.csv/.png (`evaluate.py neighbours`);
- serve: the search as a local web page and JSON API (`evaluate.py serve`);
- synthetic: clustered vectors written as shards, to test and benchmark indexes.
"""
