"""The RSNA data layer: label CSVs, DICOM reading, conversion, patient table,
synthetic data in the Kaggle layout, and patient-level splits."""
