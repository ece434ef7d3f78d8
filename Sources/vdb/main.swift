print("vdb")
