"""Above the library: the steps that chain stages (a Kubernetes index's models, evaluate then summary then
page, the MNIST net then its report, the whole chapter). The jobs call these; nothing in the library calls up here."""
