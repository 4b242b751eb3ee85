"""The four main-window tabs: acquisition import, screening review, reconstruction, birefringence."""
