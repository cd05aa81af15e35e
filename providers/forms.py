from django import forms


class ProviderKeyForm(forms.Form):
    api_key = forms.CharField(label="API key", widget=forms.PasswordInput(render_value=False), max_length=2000, strip=True)
    label = forms.CharField(label="Label (optional)", max_length=100, required=False)
    base_url = forms.CharField(label="Base URL (optional; required for OpenAI-compatible)", max_length=600, required=False)
    default_model = forms.CharField(label="Default model (optional; e.g. llama3.2 for Ollama)", max_length=200, required=False,
                                    help_text="Asked for when neither the request nor the routing rule names a model.")
