print("sspa-bench-train: not written yet")
