"""The service layer: Frontline's use cases without HTTP (``frontline.Frontline``), the
refusals they raise (``errors``), the one rule for who may act on what (``access``), and the
factory that builds it all once (``factory.build``)."""
