"""Export rendering: TipTap content to HTML (pure pycrdt) and HTML to PDF (WeasyPrint)."""
