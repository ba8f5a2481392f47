"""The report: results gathered from the pipeline's outputs, figures, HTML and Markdown."""
