"""The platform's services (one package each) and the kit they are built from."""
