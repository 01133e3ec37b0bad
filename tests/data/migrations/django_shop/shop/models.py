from django.db import models


class Order(models.Model):
    total = models.IntegerField()
    note = models.TextField(null=True)
    region = models.CharField(max_length=20)
