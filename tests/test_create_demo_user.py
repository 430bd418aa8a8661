import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_it_creates_a_staff_clerk_with_a_printed_password(tmp_path, capsys):
    password_file = tmp_path / "password"

    call_command("create_demo_user", password_file=str(password_file))

    username, password = password_file.read_text().split()
    assert password in capsys.readouterr().out
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    user = authenticate(username=username, password=password)
    assert user.is_staff
    assert not user.is_superuser
    assert user.has_perm("billruns.post_billrun")


def test_it_does_nothing_the_second_time(tmp_path, capsys, django_user_model):
    password_file = tmp_path / "password"
    call_command("create_demo_user", password_file=str(password_file))
    first = password_file.read_text()
    capsys.readouterr()

    call_command("create_demo_user", password_file=str(password_file))

    assert "exists" in capsys.readouterr().out
    assert password_file.read_text() == first
    assert django_user_model.objects.count() == 1
